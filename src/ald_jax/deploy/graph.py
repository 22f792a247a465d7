"""Rewrites of the converter's ONNX graph that keep its function and save ONNX Runtime per-node
work, which is what a batch-1 acting step costs (each node is ~0.3-1 µs of dispatch, its
arithmetic next to nothing):

* ``Add(x, 0)`` where ``x`` already has the sum's shape is ``x`` (the actor core's zero noise
  before the greedy ``argmax``);
* ``Where(cond, state, 0)`` on a state input (the reset of a recurrent state at ``first``) is
  ``state * float(cond)``: ONNX Runtime's broadcasting ``Where`` costs ~3 ``Mul``\\ s. The same
  for a finite state, which the recurrent state always is;
* ``Add(Gemm(a, w), y)`` is ``Gemm(a, w, C=y)``, and ``(a w + h u) + b`` is reassociated to
  ``a w + (h u + b)`` first, so that an LSTM's gates are two chained ``Gemm``\\ s (float
  rounding of the bias sum changes, by an ulp).

Then dead nodes and initializers go. The shape plumbing of the symbolic batch (``Shape``,
``Gather``, ``Concat``, ``Expand``) stays: ONNX Runtime folds it when the batch is fixed
(``ald_jax.deploy.policy``). Numpy and onnx only.
"""

from __future__ import annotations

import onnx
from onnx import helper, numpy_helper


class _Graph:
    """The node list of a graph with what the rewrites look up: producers, consumers, constants
    and the shapes the converter recorded (``dim_param`` or ``dim_value`` per axis)."""

    def __init__(self, graph: onnx.GraphProto):
        self.graph = graph
        self.nodes = list(graph.node)
        self.consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        self.inputs = {i.name for i in graph.input} - set(self.consts)
        self.outputs = {o.name for o in graph.output}
        infos = (*graph.input, *graph.value_info, *graph.output)
        self.shapes = {v.name: _dims(v) for v in infos}
        self.types = {v.name: v.type.tensor_type.elem_type for v in infos}

    def refresh(self) -> None:
        """Rebuilds the producer and consumer maps (after a rewrite)."""
        self._producer = {o: n for n in self.nodes for o in n.output}
        self._uses: dict[str, int] = {}
        for node in self.nodes:
            for name in node.input:
                self._uses[name] = self._uses.get(name, 0) + 1

    def producer(self, name: str):
        return self._producer.get(name)

    def same_shape(self, a: str, b: str) -> bool:
        sa, sb = self.shapes.get(a), self.shapes.get(b)
        return sa is not None and sa == sb and None not in sa

    def is_zero(self, name: str) -> bool:
        """A constant zero, or an ``Expand`` of one."""
        if name in self.consts:
            return self.consts[name].size > 0 and not self.consts[name].any()
        node = self.producer(name)
        return node is not None and node.op_type == "Expand" and self.is_zero(node.input[0])

    def rename_uses(self, old: str, new: str) -> None:
        for node in self.nodes:
            for i, name in enumerate(node.input):
                if name == old:
                    node.input[i] = new

    def private(self, name: str) -> bool:
        """Used by one node and not a graph output: a rewrite may fold it away."""
        return name not in self.outputs and self._uses.get(name, 0) == 1


def _dims(value: onnx.ValueInfoProto) -> tuple | None:
    if not value.type.tensor_type.HasField("shape"):
        return None
    return tuple(
        d.dim_param or (d.dim_value if d.HasField("dim_value") else None)
        for d in value.type.tensor_type.shape.dim
    )


def _drop_zero_adds(g: _Graph) -> bool:
    for node in g.nodes:
        if node.op_type != "Add" or node.output[0] in g.outputs:
            continue
        for keep, zero in ((0, 1), (1, 0)):
            x = node.input[keep]
            if g.is_zero(node.input[zero]) and g.same_shape(x, node.output[0]):
                g.nodes.remove(node)
                g.rename_uses(node.output[0], x)
                return True
    return False


def _resets_to_mul(g: _Graph) -> bool:
    for node in g.nodes:
        if node.op_type != "Where":
            continue
        cond, x, other = node.input
        out = node.output[0]
        float_state = x in g.inputs and g.types.get(x) == onnx.TensorProto.FLOAT
        if float_state and g.is_zero(other) and g.same_shape(x, out):
            mask = f"{cond}__as_float"
            at = g.nodes.index(node)
            g.nodes[at : at + 1] = [helper.make_node("Mul", [x, mask], [out], name=f"{out}__mul")]
            if g.producer(mask) is None:
                cast = helper.make_node(
                    "Cast", [cond], [mask], name=mask, to=onnx.TensorProto.FLOAT
                )
                g.nodes.insert(at, cast)
            return True
    return False


def _open_gemm(g: _Graph, name: str):
    """The ``Gemm`` producing ``name`` if it has no bias yet and only one consumer, else None."""
    node = g.producer(name)
    if node is None or node.op_type != "Gemm" or not g.private(name):
        return None
    beta = next((a.f for a in node.attribute if a.name == "beta"), 1.0)
    if len(node.input) > 2 and node.input[2] and beta != 0.0 and not g.is_zero(node.input[2]):
        return None
    return node


def _fits_gemm_bias(g: _Graph, y: str, out: str) -> bool:
    """``y`` broadcasts one way to the ``[M, N]`` of ``out`` (what ``Gemm``'s ``C`` allows)."""
    sy, so = g.shapes.get(y), g.shapes.get(out)
    if sy is None or so is None or len(sy) > 2 or len(so) != 2 or None in sy:
        return False
    return all(a == 1 or a == b for a, b in zip(reversed(sy), reversed(so), strict=False))


def _reassociate_bias(g: _Graph) -> bool:
    """``Add(Add(p, q), k)``, ``k`` constant and ``q`` an open ``Gemm`` of the sum's shape, to
    ``Add(p, Add(q, k))`` (``_add_into_gemm`` then folds both)."""
    for node in g.nodes:
        if node.op_type != "Add" or node.input[1] not in g.consts:
            continue
        inner = g.producer(node.input[0])
        if inner is None or inner.op_type != "Add" or not g.private(node.input[0]):
            continue
        p, q = inner.input
        if _open_gemm(g, p) is not None:
            p, q = q, p
        if _open_gemm(g, q) is None or not g.same_shape(q, node.output[0]):
            continue
        inner.input[:] = [q, node.input[1]]
        node.input[:] = [p, inner.output[0]]
        g.nodes.remove(inner)
        g.nodes.insert(g.nodes.index(node), inner)
        return True
    return False


def _add_into_gemm(g: _Graph) -> bool:
    for node in g.nodes:
        if node.op_type != "Add":
            continue
        for gi, yi in ((0, 1), (1, 0)):
            gemm = _open_gemm(g, node.input[gi])
            y = node.input[yi]
            if gemm is None or not _fits_gemm_bias(g, y, node.output[0]):
                continue
            gemm.input[:] = [*gemm.input[:2], y]
            attrs = [a for a in gemm.attribute if a.name != "beta"]
            del gemm.attribute[:]
            gemm.attribute.extend([*attrs, helper.make_attribute("beta", 1.0)])
            gemm.output[0] = node.output[0]
            g.nodes.remove(node)
            return True
    return False


RULES = (_drop_zero_adds, _resets_to_mul, _reassociate_bias, _add_into_gemm)


def simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` rewritten in place by ``RULES`` until none applies, dead nodes, initializers and
    shape records removed, nodes in topological order; checked by ``onnx.checker``."""
    if any(a.type in (a.GRAPH, a.GRAPHS) for n in model.graph.node for a in n.attribute):
        return model  # control flow: names used inside subgraphs are beyond these rewrites
    g = _Graph(model.graph)
    while True:
        g.refresh()
        if not any(rule(g) for rule in RULES):
            break
    _prune(g)
    graph = model.graph
    del graph.node[:]
    graph.node.extend(_toposort(g.nodes, g.inputs | set(g.consts)))
    used = {name for n in graph.node for name in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    produced = {name for n in graph.node for name in n.output}
    infos = [v for v in graph.value_info if v.name in produced]
    del graph.value_info[:]
    graph.value_info.extend(infos)
    onnx.checker.check_model(model)
    return model


def _prune(g: _Graph) -> None:
    """Drops the nodes none of whose outputs is used or a graph output."""
    while True:
        used = g.outputs | {name for n in g.nodes for name in n.input}
        dead = [n for n in g.nodes if not any(o in used for o in n.output if o)]
        if not dead:
            return
        for node in dead:
            g.nodes.remove(node)


def _toposort(nodes: list, available: set[str]) -> list:
    """``nodes`` in an order where each comes after the producers of its inputs (stable)."""
    done, pending, ordered = set(available) | {""}, list(nodes), []
    while pending:
        ready = [n for n in pending if all(i in done for i in n.input)]
        if not ready:
            raise ValueError("the rewritten ONNX graph has a cycle or an unproduced input")
        for node in ready:
            ordered.append(node)
            done.update(node.output)
            pending.remove(node)
    return ordered
