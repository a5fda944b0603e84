"""`python -m sensorium`: the `sensorium` command."""
import sys

from sensorium.apps.main import main

if __name__ == "__main__":
    sys.exit(main())
