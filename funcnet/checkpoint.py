"""Atomic save and exact restore of a pytree, such as a training state.

A checkpoint is one ``.npz`` file: each leaf is stored under its path
(:func:`jax.tree_util.keystr`, such as ``".opt_state[0].mu[0]['W']"``), and a
JSON header records the format version, every leaf's path, shape and dtype,
the tree's structure, a SHA-256 of the leaves' bytes and the caller's
``metadata``. PRNG keys are stored as their raw ``uint32`` data with the name
of their implementation, and come back as typed keys.

:func:`save` writes to a temporary file in the same folder, flushes and
``fsync``\\ s it, then renames it over the target with :func:`os.replace`
(atomic on POSIX and Windows), so a process killed during a save leaves the
previous checkpoint whole. :func:`restore` loads into the structure of a
``template`` built fresh by the caller (tuples stay tuples, optimizer
``NamedTuple``\\ s stay themselves); a leaf whose path, shape or dtype differs
is named in the error, and a truncated or corrupted file raises
:class:`CheckpointError`.

Why not orbax-checkpoint: it is the standard for sharded and asynchronous
saves of states too large for one host. funcnet's states are small (the
digits MLP's, optimizer included, is a few hundred kilobytes), so a save
gathers every array whole, process 0 writes one file, and the other
processes wait for it; orbax would add a heavy dependency (tensorstore and
friends) for that. This format checks the whole tree structure, every shape
and dtype against the template, and a checksum, in one small module whose
files numpy alone can read. A model whose state outgrows one host's memory
is where orbax becomes the better tool.

Example:
    >>> import tempfile, pathlib
    >>> import jax.numpy as jnp
    >>> from funcnet import checkpoint
    >>> tree = {"w": jnp.arange(3.0), "step": jnp.int32(7)}
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ckpt.npz"
    >>> _ = checkpoint.save(path, tree, metadata={"epoch": 2})
    >>> restored, metadata = checkpoint.restore(path, tree)
    >>> restored["w"].tolist(), int(restored["step"]), metadata["epoch"]
    ([0.0, 1.0, 2.0], 7, 2)
"""

import hashlib
import io
import json
import os
import pathlib
import re
import secrets
import zipfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

FORMAT = "funcnet-checkpoint"
VERSION = 1
_HEADER = "__header__"
_TOKEN_BYTES = 8  # a temporary file is ".<name>.<16 hex digits>.tmp"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read: missing, truncated or corrupted."""


def save(path, tree, *, metadata: dict[str, Any] | None = None) -> pathlib.Path:
    """Writes ``tree`` (and JSON-able ``metadata``) to ``path``, atomically.

    Args:
        path: the file to write (conventionally ending in ``.npz``); its
            folder is created when missing.
        tree: a pytree of arrays, numbers and PRNG keys.
        metadata: a dict of JSON values stored beside the arrays (the
            epoch, the history, ...); :func:`restore` returns it. Numpy and
            JAX numbers and arrays are stored as Python numbers and lists.

    Sharded arrays are gathered whole: across devices on one host, and
    across hosts under ``jax.distributed`` (every process must call
    ``save``; process 0 writes the file, so give all processes one shared
    path, and every process returns once the file is written).

    A successful save also deletes the temporary files that saves of the
    same ``path`` killed midway left in its folder (``.<name>.<hex>.tmp``);
    so two processes must not save to one path at the same time.

    Returns:
        The path written, as a :class:`pathlib.Path`.

    Raises:
        TypeError: ``metadata`` holds a value JSON cannot store; the message
            names its key.
        CheckpointError: under ``jax.distributed``, in the other processes
            when process 0 failed to write the file (it raises its own error).

    Example:
        >>> import tempfile, pathlib, jax
        >>> from funcnet import checkpoint
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> checkpoint.save(folder / "k.npz", {"key": jax.random.key(0)}).name
        'k.npz'
    """
    path = pathlib.Path(path)
    if path.is_dir():
        raise ValueError(
            f"path must be a file to write, not a folder; got {str(path)!r}. "
            f"Name a file inside it, such as {str(path / 'checkpoint.npz')!r}."
        )
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(
            f"metadata must be a dict or None; got {type(metadata).__name__}."
        )
    metadata = _as_json({} if metadata is None else metadata, "metadata")
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)

    arrays, entries = {}, []
    digest = hashlib.sha256()
    for i, (key_path, leaf) in enumerate(leaves):
        data, entry = _encode(leaf)
        entry["path"] = jax.tree_util.keystr(key_path)
        entries.append(entry)
        arrays[f"leaf_{i}"] = data
        digest.update(np.ascontiguousarray(data).tobytes())
    header = {
        "format": FORMAT,
        "version": VERSION,
        "treedef": str(treedef),
        "containers": _containers(tree),
        "leaves": entries,
        "sha256": digest.hexdigest(),
        "metadata": metadata,
    }
    header_bytes = json.dumps(header).encode()
    arrays[_HEADER] = np.frombuffer(header_bytes, np.uint8)

    # Every process gathered the same values above; process 0 writes them.
    failure = None
    if jax.process_index() == 0:
        try:
            _write(path, arrays)
        except Exception as error:
            failure = error
    if jax.process_count() > 1:
        # A collective, so no process returns before the file is written,
        # and each learns whether it was.
        from jax.experimental import multihost_utils

        written = multihost_utils.broadcast_one_to_all(np.int32(failure is None))
        if failure is None and not written:
            raise CheckpointError(
                f"process 0 failed to write the checkpoint {str(path)!r}; its "
                f"error is in its own output."
            )
    if failure is not None:
        raise failure
    return path


def _write(path, arrays) -> None:
    """Writes ``arrays`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_name = path.parent / f".{path.name}.{secrets.token_hex(_TOKEN_BYTES)}.tmp"
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            _write_npz(file, arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
        raise
    _remove_stale_temporaries(path)
    _fsync_folder(path.parent)


def restore(path, template) -> tuple[Any, dict[str, Any]]:
    """Loads the checkpoint at ``path`` into the structure of ``template``.

    Args:
        path: a file written by :func:`save`.
        template: a pytree with the structure, shapes and dtypes expected
            (build it fresh, e.g. by the same ``init`` calls as the saved
            run); its structure, shapes and dtypes are checked, and a leaf
            that is a ``jax.Array`` also gives the restored leaf its
            sharding (so a state saved from four devices restores onto one,
            or onto a mesh, as the template is laid out).

    Returns:
        ``(tree, metadata)``: ``tree`` has ``template``'s exact structure
        with the saved values as JAX arrays (PRNG keys as typed keys), and
        ``metadata`` is the dict given to :func:`save`.

    Raises:
        CheckpointError: the file is missing, truncated, corrupted, or not
            a funcnet checkpoint.
        ValueError: the saved tree does not match ``template``; the message
            names the first leaf path that differs, in structure, shape or
            dtype, or the first container whose type differs (a list for a
            tuple).

    Example:
        >>> import tempfile, pathlib
        >>> import jax.numpy as jnp
        >>> from funcnet import checkpoint
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "c.npz"
        >>> _ = checkpoint.save(path, (jnp.zeros(2),))
        >>> checkpoint.restore(path, [jnp.zeros(2)])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: checkpoint ... has a tuple at the root, but the template has...
    """
    path = pathlib.Path(path)
    header, arrays = _read(path)
    saved = header["leaves"]
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    paths = [jax.tree_util.keystr(p) for p, _ in leaves]

    saved_paths = [entry["path"] for entry in saved]
    if paths != saved_paths:
        raise ValueError(_path_mismatch(path, saved_paths, paths))
    if header["treedef"] != str(treedef):
        raise ValueError(_container_mismatch(path, header, template, treedef))

    values = []
    for entry, leaf, data in zip(saved, (leaf for _, leaf in leaves), arrays):
        values.append(_decode(path, entry, leaf, data))
    return jax.tree_util.tree_unflatten(treedef, values), header["metadata"]


def read_metadata(path) -> dict[str, Any]:
    """The ``metadata`` dict saved with the checkpoint at ``path``.

    Needs no template: use it to see a checkpoint's epoch or settings before
    building one. It reads and checks the whole file (the checksum covers
    every array), as :func:`restore` does.

    Args:
        path: a file written by :func:`save`.

    Returns:
        The ``metadata`` given to :func:`save`, as JSON gives it back (lists
        for tuples, Python numbers for numpy ones).

    Raises:
        CheckpointError: the file is missing, truncated, corrupted, or not
            a funcnet checkpoint.

    Example:
        >>> import tempfile, pathlib
        >>> from funcnet import checkpoint
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.npz"
        >>> _ = checkpoint.save(path, {}, metadata={"epoch": 3})
        >>> checkpoint.read_metadata(path)
        {'epoch': 3}
    """
    header, _ = _read(pathlib.Path(path))
    return header["metadata"]


# encoding


def _is_key(leaf) -> bool:
    dtype = getattr(leaf, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _host_copy(array):
    """The whole value of ``array`` on this host, gathering shards if needed."""
    if isinstance(array, jax.Array) and not array.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(array, tiled=True))
    return np.asarray(array)


def _encode(leaf):
    if _is_key(leaf):
        data = _host_copy(jax.random.key_data(leaf))
        impl = str(jax.random.key_impl(leaf))
        return data, {"shape": list(leaf.shape), "dtype": "key", "key_impl": impl}
    data = _host_copy(leaf)
    return data, {"shape": list(data.shape), "dtype": data.dtype.name}


def _place(data, leaf):
    """``data`` as a device array laid out like the template's ``leaf``.

    A template leaf that is a ``jax.Array`` gives its sharding (replicated
    or split over a mesh, on one host or several); anything else lands on
    the default device.
    """
    sharding = getattr(leaf, "sharding", None)
    if sharding is None:
        return jnp.asarray(data)
    return jax.make_array_from_callback(data.shape, sharding, lambda index: data[index])


def _decode(path, entry, leaf, data):
    name = entry["path"]
    if entry["dtype"] == "key":
        if not _is_key(leaf):
            raise ValueError(
                f"leaf {name} of checkpoint {str(path)!r} is a PRNG key, but "
                f"the template's leaf is not (dtype {_dtype_name(leaf)})."
            )
        key_data = jax.random.key_data(leaf) if isinstance(leaf, jax.Array) else None
        value = jax.random.wrap_key_data(_place(data, key_data), impl=entry["key_impl"])
    else:
        if _is_key(leaf):
            raise ValueError(
                f"leaf {name} of the template is a PRNG key, but checkpoint "
                f"{str(path)!r} holds an array of dtype {entry['dtype']} there."
            )
        if entry["dtype"] != _dtype_name(leaf):
            raise ValueError(
                f"leaf {name} of checkpoint {str(path)!r} has dtype "
                f"{entry['dtype']}, but the template expects {_dtype_name(leaf)}."
            )
        value = None
    template_shape = tuple(np.shape(leaf))
    if tuple(entry["shape"]) != template_shape:
        raise ValueError(
            f"leaf {name} of checkpoint {str(path)!r} has shape "
            f"{tuple(entry['shape'])}, but the template expects {template_shape}."
        )
    return _place(data, leaf) if value is None else value


def _dtype_name(leaf) -> str:
    dtype = getattr(leaf, "dtype", None)
    if dtype is None:
        dtype = np.asarray(leaf).dtype
    return np.dtype(dtype).name


def _containers(tree) -> list[list[str]]:
    """Every container of ``tree``, parents first, as ``[path, type name]``."""
    found = []

    def walk(key_path, node):
        children, treedef = jax.tree_util.tree_flatten_with_path(
            node, is_leaf=lambda child: child is not node
        )
        if treedef.num_nodes == 1 and treedef.num_leaves == 1:
            return
        found.append([jax.tree_util.keystr(key_path), type(node).__qualname__])
        for child_path, child in children:
            walk(key_path + child_path, child)

    walk((), tree)
    return found


def _container_mismatch(path, header, template, treedef) -> str:
    saved = header.get("containers")
    if saved is not None:
        expected = _containers(template)
        for (saved_at, saved_type), (at, expected_type) in zip(saved, expected):
            if saved_at != at:
                break
            if saved_type != expected_type:
                where = at if at else "the root"
                return (
                    f"checkpoint {str(path)!r} has a {saved_type} at {where}, but "
                    f"the template has a {expected_type} there; the leaf paths "
                    f"agree, so build the template with the same container types "
                    f"(a tuple stays a tuple, a NamedTuple the same class)."
                )
    return (
        f"checkpoint {str(path)!r} has the structure {header['treedef']}, "
        f"but the template has {treedef}; the leaf paths agree, so the "
        f"containers differ (a list for a tuple, another NamedTuple class)."
    )


def _path_mismatch(path, saved, expected) -> str:
    missing = [p for p in expected if p not in saved]
    extra = [p for p in saved if p not in expected]
    if missing:
        detail = f"the template's leaf {missing[0]} is not in the checkpoint"
    elif extra:
        detail = f"the checkpoint's leaf {extra[0]} is not in the template"
    else:
        first = next(i for i, (s, e) in enumerate(zip(saved, expected)) if s != e)
        detail = (
            f"leaf {first} is {saved[first]} in the checkpoint but "
            f"{expected[first]} in the template"
        )
    return (
        f"checkpoint {str(path)!r} does not match the template's structure: "
        f"{detail} ({len(saved)} leaves saved, {len(expected)} expected)."
    )


def _as_json(value, where: str = "metadata"):
    """``value`` as JSON stores it, numpy numbers and arrays converted.

    Numpy and JAX numbers and arrays become Python numbers and lists, and
    tuples lists, so that the value compares equal to what
    :func:`read_metadata` gives back after a save.

    Args:
        value: a dict, list, tuple, number, string, boolean or ``None``,
            nested; numpy and JAX numbers and arrays are converted.
        where: the name of ``value`` in a ``TypeError``'s message.

    Returns:
        The value that :func:`read_metadata` gives back after a save.

    Raises:
        TypeError: ``value`` holds something else; the message names its key.

    Example:
        >>> import numpy as np
        >>> from funcnet import checkpoint
        >>> checkpoint._as_json({"lr": np.float32(0.5), "sizes": (64, 10)})
        {'lr': 0.5, 'sizes': [64, 10]}
    """
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{where} has the key {key!r} of type {type(key).__name__}; "
                    f"checkpoint metadata is JSON, whose keys are strings."
                )
            out[key] = _as_json(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_as_json(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.generic, np.ndarray, jax.Array)):
        array = np.asarray(value)
        if array.dtype.kind in "biuf":
            return array.tolist()
    raise TypeError(
        f"{where} is a {type(value).__name__} ({value!r}), which checkpoint "
        f"metadata cannot store: it is JSON, so give numbers, strings, booleans, "
        f"None, lists and dicts (numpy numbers and arrays are converted)."
    )


# files


def _write_npz(file, arrays) -> None:
    np.savez(file, **arrays)


def _remove_stale_temporaries(path) -> None:
    """Deletes temporary files that killed saves of ``path`` left behind.

    Only names of :func:`save`'s own pattern for this file are touched.
    """
    pattern = re.compile(
        rf"\.{re.escape(path.name)}\.[0-9a-f]{{{2 * _TOKEN_BYTES}}}\.tmp"
    )
    for entry in path.parent.iterdir():
        if pattern.fullmatch(entry.name) and entry.is_file():
            entry.unlink(missing_ok=True)


def _fsync_folder(folder) -> None:
    if os.name != "posix":  # pragma: no cover - Windows cannot open folders
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read(path):
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {str(path)!r}.")
    try:
        content = path.read_bytes()
        with np.load(io.BytesIO(content), allow_pickle=False) as npz:
            header = json.loads(bytes(npz[_HEADER]).decode())
            if not isinstance(header, dict):
                raise TypeError(
                    f"its header is a JSON {type(header).__name__}, not an object"
                )
            count = len(header["leaves"])
            arrays = [npz[f"leaf_{i}"] for i in range(count)]
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        EOFError,
        zipfile.BadZipFile,
    ) as error:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or corrupted and cannot be "
            f"read ({type(error).__name__}: {error})."
        ) from error
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise CheckpointError(
            f"{str(path)!r} is not a {FORMAT} version {VERSION} file; its header "
            f"says format {header.get('format')!r}, version {header.get('version')!r}."
        )
    digest = hashlib.sha256()
    for data in arrays:
        digest.update(np.ascontiguousarray(data).tobytes())
    if digest.hexdigest() != header["sha256"]:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupted: the SHA-256 of its arrays "
            f"does not match the one recorded when it was saved."
        )
    return header, arrays


__all__ = ["CheckpointError", "read_metadata", "restore", "save"]
