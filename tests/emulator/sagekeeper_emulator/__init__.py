"""sagekeeper's AWS emulator: moto 5.2.5 in server mode, made to behave like AWS where
the controller's correctness depends on it. Run it with `python -m sagekeeper_emulator`;
see README.md for the control API and every behaviour added.
"""
