"""The failure list the integration checks share: check() records and prints a failed condition,
finish() reports and returns the exit code."""
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}", flush=True)
    return bool(cond)


def finish(label):
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print(f"{label}: all checks passed")
    return 0
