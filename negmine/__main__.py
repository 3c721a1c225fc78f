"""``python -m negmine``."""

from negmine.cli import main

if __name__ == "__main__":
    main()
