"""Exit codes of the fitcalc command (docs/cli.md). CORE."""

OK = 0
ERROR = 1  # bad input, unknown id, unreadable file: one line on stderr
USAGE = 2  # wrong options (click's own code)
DOES_NOT_FIT = 3  # `fit --check` or `check`: a configuration does not fit / an assertion failed
VERIFY_OUT_OF_TOLERANCE = 4  # `verify`: a measured term is outside its tolerance
VERIFY_OOM = 5  # `verify`: the device ran out of memory (does not fit, measured)
INTERRUPTED = 130
