"""Operations: the runner, lock, checks, quarantine, set-up and the demo."""
