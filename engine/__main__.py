"""`python -m engine ...` is the same as `syncanim ...`."""
import sys

from engine.cli import main

sys.exit(main())
