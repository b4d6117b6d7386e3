"""Expert quality per CPU budget: `omnipianist bench expert --json` (resumable; exit 1 when a target is missed).

Default budget: 60 min Twinkle with the prior, 60 min without, 10 corpus pieces x 5 min on 2 cores.
"""

import sys

from omnipianist.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "expert", "--json", *sys.argv[1:]]))
