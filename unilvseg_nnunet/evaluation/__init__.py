"""Stage 5, evaluation: predictions in, numbers and reports out.

``metrics`` (DSC, HD95, bootstrap intervals), ``cardiac`` (area curves, EF, ED/ES, temporal
consistency), ``scoring`` (``unilvseg evaluate``), ``reports`` (CSV, Markdown, plots),
``overlay`` (contour videos), ``cost`` (parameters and GFLOPs) and ``compare`` (Table I).
"""
