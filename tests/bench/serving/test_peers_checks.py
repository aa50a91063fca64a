"""bench/serving/peers' refusals, without any of the frameworks: the ss parsing and the order check."""

from bench.serving.peers.run import item_order, non_loopback_listeners, same_order

SS = """LISTEN 0 2048 127.0.0.1:8123 0.0.0.0:* users:(("python",pid=10,fd=7))
LISTEN 0 128 0.0.0.0:6379 0.0.0.0:* users:(("gcs_server",pid=11,fd=9))
LISTEN 0 128 [::1]:9000 [::]:* users:(("raylet",pid=12,fd=3))
LISTEN 0 128 [::]:9001 [::]:* users:(("raylet",pid=12,fd=4))
LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=1,fd=3))
"""


def test_non_loopback_listeners_of_the_tree_only():
    bad = non_loopback_listeners(SS, {10, 11, 12})
    assert [line.split()[3] for line in bad] == ["0.0.0.0:6379", "[::]:9001"]  # sshd is not ours
    assert non_loopback_listeners(SS, {10}) == []


def test_order_check():
    body = b'{"items": [{"item_id": "b", "score": 2}, {"item_id": "a", "score": 1}]}'
    assert item_order(body) == ["b", "a"]
    assert same_order([["b", "a"]], [["b", "a"]])
    assert not same_order([["b", "a"]], [["a", "b"]])
    assert not same_order([["b", "a"]], [])
    assert not same_order([[]], [[]])  # an empty answer proves nothing


def test_wildcards_pass_only_in_a_loopback_only_namespace():
    bad = non_loopback_listeners(SS, {11, 12}, only_lo=True)
    assert bad == []
    assert non_loopback_listeners('LISTEN 0 5 192.0.2.2:52365 0.0.0.0:* users:(("ray::Dash",pid=11,fd=3))',
                                  {11}, only_lo=True)
