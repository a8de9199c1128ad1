import re


def check(result):
    assert result.returncode == 0, "exit code"
    assert result.stderr == "", "nothing on stderr"
    lines = result.stdout.splitlines()
    assert len(lines) == 4, "four lines"
    parent = re.fullmatch(r"Parent process (\d+)\.", lines[0])
    assert parent, "the parent announces itself"
    assert lines[1] == "Child process will start.", "second line"
    child = re.fullmatch(r"Run child process test \((\d+)\)\.\.\.", lines[2])
    assert child, "the child runs run_proc('test')"
    assert child.group(1) != parent.group(1), "the child is another process"
    assert lines[3] == "Child process end.", "join waited for the child"
