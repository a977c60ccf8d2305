import sys

try:
    from lenet.cli import script
except KeyboardInterrupt:  # Ctrl-C while Python is still importing lenet: one line, no traceback
    print("lenet: interrupted", file=sys.stderr)
    raise SystemExit(130) from None

raise SystemExit(script())
