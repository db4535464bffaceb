"""`python -m sagekeeper_emulator`: run the AWS emulator (see server.py)."""

from .server import main

main()
