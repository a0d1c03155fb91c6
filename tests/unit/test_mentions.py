"""The mentions index's entries (`chalicelib.mentions`): every digit run an identifier can be, in a deterministic
order; `*` for a body that escapes a digit; keyed hashes (never the run) in hash mode; forgotten runs left out."""

from __future__ import annotations

from chalicelib import mentions

BODY = (b'{"from":"15557654321","id":"wamid.X","timestamp":"1741600001","user":"user7400123456",'
        b'"chat":{"id":-4012345678},"bsuid":"US.4455667788990011","n":1234,"again":"15557654321"}')


def test_entries_list_each_run_once_in_order() -> None:
    entry = mentions.entry(BODY, None)
    assert entry.split(" ") == sorted({"15557654321", "1741600001", "7400123456", "4012345678",
                                       "4455667788990011"})
    assert mentions.entry(BODY, None) == entry  # same bytes, same entry (re-runs write identical files)
    assert mentions.entry(b'{"wa_id":"\\u00315557654321"}', None) == mentions.ANY


def test_hashed_entries_hold_no_run_and_match_the_token() -> None:
    entry = mentions.entry(BODY, mentions.hasher("salt"))
    assert "15557654321" not in entry and "7400123456" not in entry
    assert mentions.may_mention(entry, mentions.token("15557654321", "salt") or "")
    assert not mentions.may_mention(entry, mentions.token("15557654321", "another salt") or "")
    assert mentions.token("15557654321", "salt") != mentions.token("15557654321", None)


def test_tokens_of_every_identifier_kind() -> None:
    entry = mentions.entry(BODY, None)
    for value in ("15557654321", "7400123456", "-4012345678", "US.4455667788990011"):
        assert mentions.may_mention(entry, mentions.token(value, None) or ""), value
    assert not mentions.may_mention(entry, mentions.token("5557654321", None) or "")  # inside a longer run
    assert mentions.token("US.abcdef", None) is None  # no run to file it under: forget reads everything


def test_denied_runs_are_left_out() -> None:
    entry = mentions.entry(BODY, None, lambda run: run == "15557654321")
    assert "15557654321" not in entry and "7400123456" in entry
