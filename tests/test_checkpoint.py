"""Checkpoints: exact round trips, named mismatches, corruption, atomic saves."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnet import checkpoint, layers, optim, train


def _train_state(key, sizes=(3, 4, 2)):
    net = layers.mlp(list(sizes))
    return train.init_train_state(net, optim.adam(1e-3), key=key)


def _leaves_equal(a, b):
    flat_a, flat_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(flat_a) == len(flat_b)
    for x, y in zip(flat_a, flat_b):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_keeps_structure_values_and_keys(tmp_path, key):
    saved = _train_state(key)
    saved = saved._replace(step=jnp.int32(17))
    path = checkpoint.save(tmp_path / "ckpt.npz", saved, metadata={"epoch": 4})

    template = _train_state(jax.random.key(99))
    restored, metadata = checkpoint.restore(path, template)

    assert jax.tree.structure(restored) == jax.tree.structure(saved)
    assert isinstance(restored, train.TrainState)
    assert isinstance(restored.params, tuple)
    assert type(restored.opt_state[0]).__name__ == "ScaleByAdamState"
    assert restored.key.dtype == saved.key.dtype
    _leaves_equal(restored, saved)
    assert metadata == {"epoch": 4}
    assert checkpoint.read_metadata(path) == {"epoch": 4}


def test_shape_mismatch_names_the_leaf(tmp_path, key):
    path = checkpoint.save(tmp_path / "c.npz", _train_state(key, (3, 4, 2)))
    with pytest.raises(
        ValueError, match=r"leaf \.params\[0\]\['W'\] .* shape \(3, 4\)"
    ):
        checkpoint.restore(path, _train_state(key, (3, 5, 2)))


def test_dtype_mismatch_names_the_leaf(tmp_path):
    path = checkpoint.save(tmp_path / "c.npz", {"step": jnp.int32(3)})
    with pytest.raises(ValueError, match=r"leaf \['step'\] .* dtype int32.*float32"):
        checkpoint.restore(path, {"step": jnp.float32(0)})


def test_missing_leaf_names_its_path(tmp_path, key):
    path = checkpoint.save(tmp_path / "c.npz", _train_state(key, (3, 2)))
    with pytest.raises(ValueError, match=r"template's leaf \.params\[2\]\['W'\]"):
        checkpoint.restore(path, _train_state(key, (3, 4, 2)))


def test_list_for_tuple_is_a_structure_mismatch(tmp_path):
    path = checkpoint.save(tmp_path / "c.npz", (jnp.zeros(2), jnp.ones(1)))
    with pytest.raises(ValueError, match="has a tuple at the root, but the template"):
        checkpoint.restore(path, [jnp.zeros(2), jnp.ones(1)])


def test_container_mismatch_names_the_first_path_and_both_types(tmp_path, key):
    saved = _train_state(key)
    path = checkpoint.save(tmp_path / "c.npz", saved)
    # A list where the network's init gives the second layer's (empty) tuple,
    # and another inside the optimizer state: the first one is named.
    params = (saved.params[0], [], saved.params[2])
    mu = saved.opt_state[0].mu
    opt_state = (saved.opt_state[0]._replace(mu=list(mu)), saved.opt_state[1])
    template = saved._replace(params=params, opt_state=opt_state)
    with pytest.raises(ValueError) as err:
        checkpoint.restore(path, template)
    message = str(err.value)
    assert "has a tuple at .params[1], but the template has a list there" in message, (
        message
    )
    assert "PyTreeDef" not in message


def test_key_where_template_has_an_array(tmp_path, key):
    path = checkpoint.save(tmp_path / "c.npz", {"key": key})
    with pytest.raises(ValueError, match=r"leaf \['key'\] .* PRNG key"):
        checkpoint.restore(path, {"key": jnp.zeros(2, jnp.uint32)})


def test_truncated_file_is_a_clear_error(tmp_path, key):
    path = checkpoint.save(tmp_path / "c.npz", _train_state(key))
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(checkpoint.CheckpointError, match="truncated or corrupted"):
        checkpoint.restore(path, _train_state(key))


def test_flipped_byte_is_a_clear_error(tmp_path, key):
    tree = {"w": jnp.arange(4096, dtype=jnp.float32)}
    path = checkpoint.save(tmp_path / "c.npz", tree)
    content = bytearray(path.read_bytes())
    position = content.find(np.arange(4096, dtype=np.float32)[1000:1002].tobytes())
    assert position > 0
    content[position] ^= 0xFF
    path.write_bytes(bytes(content))
    with pytest.raises(checkpoint.CheckpointError, match="corrupted"):
        checkpoint.restore(path, tree)


def test_other_files_are_rejected(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint file"):
        checkpoint.restore(tmp_path / "missing.npz", {})
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(checkpoint.CheckpointError, match="cannot be read"):
        checkpoint.restore(tmp_path / "other.npz", {})
    with pytest.raises(ValueError, match="path must be a file"):
        checkpoint.save(tmp_path, {})


def test_failed_save_leaves_the_previous_checkpoint(tmp_path, key, monkeypatch):
    old = _train_state(key)
    path = checkpoint.save(tmp_path / "c.npz", old, metadata={"epoch": 1})

    def write_half_then_fail(file, arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full (injected)")

    monkeypatch.setattr(checkpoint, "_write_npz", write_half_then_fail)
    with pytest.raises(OSError, match="injected"):
        checkpoint.save(path, _train_state(jax.random.key(5)), metadata={"epoch": 2})

    restored, metadata = checkpoint.restore(path, _train_state(key))
    _leaves_equal(restored, old)
    assert metadata == {"epoch": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


_KILLED_SAVE = """
    import os, signal, sys
    import jax
    from funcnet import checkpoint

    def write_some_then_die(file, arrays):
        file.write(b"PK\\x03\\x04" + bytes(1000))
        file.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    checkpoint._write_npz = write_some_then_die
    checkpoint.save(sys.argv[1], {"w": jax.numpy.ones(3)}, metadata={"epoch": 2})
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
def test_process_killed_during_save_leaves_the_previous_checkpoint(tmp_path):
    old = {"w": jnp.arange(3.0)}
    path = checkpoint.save(tmp_path / "c.npz", old, metadata={"epoch": 1})

    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_KILLED_SAVE), str(path)],
        capture_output=True,
        timeout=120,
    )

    assert child.returncode == -9, child.stderr.decode()
    leftovers = [p for p in pathlib.Path(tmp_path).iterdir() if p.name != "c.npz"]
    assert len(leftovers) == 1 and leftovers[0].name.endswith(".tmp")
    restored, metadata = checkpoint.restore(path, {"w": jnp.zeros(3)})
    np.testing.assert_array_equal(restored["w"], [0.0, 1.0, 2.0])
    assert metadata == {"epoch": 1}

    # The next successful save of the same file clears the stale temporary,
    # and nothing else: another checkpoint's temporary and other files stay.
    others = [tmp_path / ".d.npz.0123456789abcdef.tmp", tmp_path / "notes.tmp"]
    for other in others:
        other.write_bytes(b"keep")
    checkpoint.save(path, {"w": jnp.ones(3)}, metadata={"epoch": 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["c.npz", *(p.name for p in others)]
    )


def test_a_header_that_is_not_an_object_is_a_checkpoint_error(tmp_path):
    header = np.frombuffer(json.dumps(["not", "a", "header"]).encode(), np.uint8)
    np.savez(tmp_path / "list.npz", __header__=header)
    with pytest.raises(checkpoint.CheckpointError, match="header is a JSON list"):
        checkpoint.restore(tmp_path / "list.npz", {})
    with pytest.raises(checkpoint.CheckpointError, match="cannot be read"):
        checkpoint.read_metadata(tmp_path / "list.npz")


def test_numpy_numbers_in_metadata_are_stored_as_python_numbers(tmp_path):
    metadata = {
        "epoch": np.int64(3),
        "best": np.float32(0.25),
        "stopped": np.bool_(True),
        "history": {"loss": np.array([1.5, 0.5]), "step": [jnp.int32(7)]},
    }
    path = checkpoint.save(tmp_path / "c.npz", {}, metadata=metadata)
    assert checkpoint.read_metadata(path) == {
        "epoch": 3,
        "best": 0.25,
        "stopped": True,
        "history": {"loss": [1.5, 0.5], "step": [7]},
    }


def test_metadata_json_cannot_hold_names_its_key(tmp_path):
    with pytest.raises(TypeError, match=r"metadata\['run'\]\['tags'\] is a set"):
        checkpoint.save(tmp_path / "c.npz", {}, metadata={"run": {"tags": {"a"}}})
    with pytest.raises(TypeError, match=r"metadata has the key 3 of type int"):
        checkpoint.save(tmp_path / "c.npz", {}, metadata={3: "three"})
    assert list(tmp_path.iterdir()) == []
