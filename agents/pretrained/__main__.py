"""`python -m agents.pretrained export RUN_DIR NAME`: runs atomgym.agents.pretrained's main."""
import sys

from atomgym.agents.pretrained.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
