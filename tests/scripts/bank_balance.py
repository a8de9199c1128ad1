"""Without a lock, two parallel threads lose updates of the shared balance:
the final balance is not 0. A rare lucky interleaving can still give 0, so
the script is run up to eight times before the test fails (on a loaded
2-core machine the two threads sometimes barely overlap)."""
import subprocess
import sys


def check(result):
    assert result.stderr == "", "nothing on stderr"
    outputs = [result]
    while outputs[-1].returncode == 0 and outputs[-1].stdout.strip() == "0" and len(outputs) < 8:
        outputs.append(subprocess.run(result.args, capture_output=True, text=True, timeout=60))
    last = outputs[-1]
    assert last.returncode == 0, "exit code"
    lines = last.stdout.splitlines()
    assert len(lines) == 1 and lines[0].lstrip("-").isdigit(), "prints one integer"
    assert int(lines[0]) != 0, f"no lost update showed in {len(outputs)} runs"
    print(f"balance {lines[0]} after {len(outputs)} run(s)", file=sys.stderr)
