"""Stage 1, data: echo videos in, nnU-Net raw datasets out.

``echonet`` reads EchoNet-Dynamic's files and applies its tracing rules; ``phantom`` writes a
synthetic dataset in the same format (with the truth of every frame); ``conversion`` turns such a
folder into an nnU-Net raw dataset; ``dataset`` is the contract between the raw dataset and every
later stage (labels, metadata, file ending, dataset lookup).
"""
