"""Embedded broker helpers that need no running broker."""

from __future__ import annotations

from bigbilbao.infra import broker


def test_cluster_ids_never_start_with_a_dash() -> None:
    ids = [broker.new_cluster_id() for _ in range(3000)]  # 1 in 64 base64 ids starts with '-'
    assert not [i for i in ids if i.startswith("-")]
    assert len(set(ids)) == len(ids) and {len(i) for i in ids} == {22}
