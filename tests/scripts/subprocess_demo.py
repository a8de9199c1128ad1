def check(result):
    assert result.returncode == 0, "exit code"
    expected = [
        "$ echo Hello from a child process",
        "Hello from a child process",
        "Exit code: 0",
        "$ sh",
        "/",
        "2 + 3 = 5",
        "",
        "Exit code: 0",
    ]
    assert result.stdout.splitlines() == expected, "output differs from the tutorial's shape"
    assert result.stderr == "", "nothing on stderr"
