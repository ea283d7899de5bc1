"""The key sets the per-request checks read (`Settings.keys`, `public_key_set`) are parsed once per setting
string: a setting changed after it was read answers with its new keys, never the old parse."""

from __future__ import annotations

from deepshelf.engine.settings import Settings


def test_key_sets_follow_a_changed_setting():
    settings = Settings(api_keys=" a, b ,", public_keys="p1,p2")
    assert settings.keys == {"a", "b"}
    assert settings.public_key_set == {"p1", "p2"}
    settings.api_keys = "c"
    settings.public_keys = ""
    assert settings.keys == {"c"}
    assert settings.public_key_set == frozenset()
    other = Settings(api_keys="a,b", public_keys="q")  # the same string as another object's: the same keys
    assert other.keys == {"a", "b"} and other.public_key_set == {"q"}
