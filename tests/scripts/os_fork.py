import re


def check(result):
    assert result.returncode == 0, "exit code"
    assert result.stderr == "", "nothing on stderr"
    lines = result.stdout.splitlines()
    assert len(lines) == 3, "three lines: start, parent, child"
    start = re.fullmatch(r"Process \((\d+)\) start\.\.\.", lines[0])
    assert start, "first line announces the process"
    parent_pid = start.group(1)
    parent = [re.fullmatch(r"I \((\d+)\) just created a child process \((\d+)\)\.", l) for l in lines[1:]]
    child = [re.fullmatch(r"I am child process \((\d+)\) and my parent is (\d+)\.", l) for l in lines[1:]]
    parent = [m for m in parent if m]
    child = [m for m in child if m]
    assert len(parent) == 1 and len(child) == 1, "one parent line and one child line"
    assert parent[0].group(1) == parent_pid, "the parent keeps its pid"
    assert child[0].group(1) == parent[0].group(2), "fork returned the child's pid to the parent"
    assert child[0].group(1) != parent_pid, "the child is another process"
    # The child's "parent" is not checked: the parent may exit first (as in
    # Python), and the child is then re-parented.
