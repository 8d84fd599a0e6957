"""DiVA, the Distilled Voice Assistant: model package (audio input, model, losses, checkpoints,
assistants). `python -m diva --help` lists the commands."""
__version__ = "0.1.0"
