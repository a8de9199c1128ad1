import re


def check(result):
    assert result.returncode == 0, "exit code"
    assert result.stderr == "", "nothing on stderr (the reader is terminated quietly)"
    lines = result.stdout.splitlines()
    writer = [l for l in lines if re.fullmatch(r"Process to write: \d+", l)]
    reader = [l for l in lines if re.fullmatch(r"Process to read: \d+", l)]
    assert len(writer) == 1 and len(reader) == 1, "one writer and one reader"
    assert writer[0].split()[-1] != reader[0].split()[-1], "two processes"
    puts = [l for l in lines if l.startswith("Put ")]
    gets = [l for l in lines if l.startswith("Get ")]
    assert puts == ["Put A to queue...", "Put B to queue...", "Put C to queue..."], "the writer's puts"
    assert gets == ["Get A from queue.", "Get B from queue.", "Get C from queue."], "the reader got all, in order"
    for v in "ABC":
        assert lines.index(f"Put {v} to queue...") < lines.index(f"Get {v} from queue."), f"{v} put before got"
    assert len(lines) == 8, "nothing else"
