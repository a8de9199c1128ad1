def check(result):
    assert result.returncode == 0, "exit code"
    assert result.stdout == "0\n", "with the lock the balance is always 0"
    assert result.stderr == "", "nothing on stderr"
