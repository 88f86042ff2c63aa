"""The training stream over a face pack (clipswap.facedata.pack), without TensorFlow: what the JAX training step
reads on a machine where tf.data does not exist.

The recipe is the tf.data pipeline's (clipswap.training.data.make_train_dataset): a target stream and a source
stream over the same training records, each in its own shuffled order; the recipe's colour jitter, one draw per
batch for the targets and one for the sources; each sample a same-identity pair with probability
`same_identity_prob` (at least one a batch). With mates (some person has two or more photos) such a pair is two
different photos of one person: the target from a third stream over the records of those people, the source another
photo of the target's person, so the reconstruction and perceptual terms compare the swap with a real photo whose
pose and expression differ from the source's; without mates the source is the jittered target.

Determinism: batch k is a pure function of (seed, k) -- every stream's order is a per-epoch permutation seeded by
(stream seed, epoch), every draw of batch k by (draw seed, k) -- so a run resumed at step k reads exactly the batches
the uninterrupted run would have, with nothing to checkpoint. The draws are NumPy's, not tf.random's: the two
backends draw the same kinds of batches, not the same batches.

Decoding and batching run in background threads (cv2's JPEG decoder releases the GIL) with a bounded queue of
`prefetch` batches in flight, delivered in step order.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from clipswap.facedata.pack import FacePack
from clipswap.training.sampling import (
    derive_seeds,
    eval_batch_indices,
    eval_pool_size,
    jitter_numpy,
    same_identity_numpy,
)

#: Seeds derived from the run seed, one a stream or draw (derive_seeds), in this order.
_SEED_NAMES = ("target", "source", "mate", "same", "mate_pick", "target_jitter", "source_jitter")


class PackStream:
    """Endless training batches over some records of a face pack.

    Args:
        pack: the opened pack.
        indices: the record indices to train on (FacePack.split's first part).
        batch_size: samples a batch.
        image_size: side S of the batches; crops of another size are resized (bilinear).
        same_identity_prob: probability in [0, 1] that a sample is a same-identity pair.
        jitter: apply the recipe's colour jitter.
        seed: run seed.
        workers: decoding threads.
        prefetch: batches in flight (the bounded queue's length).

    Batches (`batch(k)`, or `iterate(start)` from batch `start` on) are dicts of NumPy arrays:
        "target", "source": [B, S, S, 3] float32 RGB in [-1, 1]; "same": [B] float32 1.0 on same-identity pairs;
        "target_label", "source_label": [B] int64.
    """

    def __init__(self, pack: FacePack, indices: np.ndarray, batch_size: int, image_size: int,
                 same_identity_prob: float = 0.2, jitter: bool = True, seed: int = 0, workers: int = 2,
                 prefetch: int = 4):
        if batch_size < 1 or image_size < 1 or workers < 1 or prefetch < 1:
            raise ValueError("batch_size, image_size, workers and prefetch must be at least 1")
        if not 0.0 <= same_identity_prob <= 1.0:
            raise ValueError(f"same_identity_prob must be in [0, 1], got {same_identity_prob}")
        self.pack = pack
        self.indices = np.asarray(indices, np.int64)
        if len(self.indices) == 0:
            raise ValueError("a pack stream needs at least one record")
        self.batch_size, self.image_size = int(batch_size), int(image_size)
        self.probability, self.jitter = float(same_identity_prob), bool(jitter)
        self.workers, self.prefetch = int(workers), int(prefetch)
        self.seeds = dict(zip(_SEED_NAMES, derive_seeds(seed, len(_SEED_NAMES)), strict=True))
        labels = pack.label[self.indices]
        people: dict[int, list[int]] = collections.defaultdict(list)
        for index, label in zip(self.indices.tolist(), labels.tolist(), strict=True):
            people[label].append(index)
        #: label -> that person's training records, for the people with two or more.
        self.photos = {label: np.asarray(found) for label, found in people.items() if len(found) >= 2}
        #: The records the mate stream draws targets from (every photo of a person with two or more).
        self.mate_records = np.concatenate(list(self.photos.values())) if self.photos else np.zeros(0, np.int64)

    @property
    def mates(self) -> bool:
        """Same-identity pairs are two different photos (some training person has two or more)."""
        return len(self.mate_records) > 0

    def _order(self, stream: str, records: np.ndarray, number: int) -> np.ndarray:
        """Batch `number`'s records of one stream: positions number * B ... of the endless sequence of per-epoch
        permutations of `records`."""
        positions = np.arange(number * self.batch_size, (number + 1) * self.batch_size)
        epochs, within = np.divmod(positions, len(records))
        chosen = np.empty(self.batch_size, np.int64)
        for epoch in np.unique(epochs):
            permutation = np.random.default_rng([self.seeds[stream], int(epoch)]).permutation(len(records))
            where = epochs == epoch
            chosen[where] = records[permutation[within[where]]]
        return chosen

    def decode_records(self, records: np.ndarray) -> np.ndarray:
        """[n, S, S, 3] float32 in [-1, 1] of these records."""
        images = []
        for index in records.tolist():
            rgb = self.pack.decode(index)
            if rgb.shape[0] != self.image_size or rgb.shape[1] != self.image_size:
                rgb = cv2.resize(rgb, (self.image_size, self.image_size), interpolation=cv2.INTER_LINEAR)
            images.append(rgb)
        return np.stack(images).astype(np.float32) / np.float32(127.5) - np.float32(1.0)

    def batch(self, number: int) -> dict[str, np.ndarray]:
        """Batch `number` (0 is the first step's), decoded in the calling thread."""
        target = self._order("target", self.indices, number)
        source = self._order("source", self.indices, number)
        same = same_identity_numpy(np.random.default_rng([self.seeds["same"], number]), self.batch_size,
                                   self.probability)
        if self.mates:
            picks = np.random.default_rng([self.seeds["mate_pick"], number])
            for i, record in zip(np.flatnonzero(same), self._order("mate", self.mate_records, number)[same],
                                 strict=True):
                others = self.photos[int(self.pack.label[record])]
                target[i] = record
                source[i] = picks.choice(others[others != record])
        target_images, source_images = self.decode_records(target), self.decode_records(source)
        if self.jitter:
            target_images = jitter_numpy(
                target_images, np.random.default_rng([self.seeds["target_jitter"], number]).random(3))
            source_images = jitter_numpy(
                source_images, np.random.default_rng([self.seeds["source_jitter"], number]).random(3))
        if not self.mates:
            source_images = np.where(same[:, None, None, None], target_images, source_images)
            source = np.where(same, target, source)
        return {"target": target_images, "source": source_images, "same": same.astype(np.float32),
                "target_label": self.pack.label[target].astype(np.int64),
                "source_label": self.pack.label[source].astype(np.int64)}

    def iterate(self, start: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Batches start, start + 1, ... decoded by `workers` threads, at most `prefetch` in flight, in order."""
        with ThreadPoolExecutor(self.workers, thread_name_prefix="pack-stream") as pool:
            pending = collections.deque(pool.submit(self.batch, start + k) for k in range(self.prefetch))
            number = start + self.prefetch
            try:
                while True:
                    ready = pending.popleft().result()
                    pending.append(pool.submit(self.batch, number))
                    number += 1
                    yield ready
            finally:
                for future in pending:
                    future.cancel()


def pack_eval_batch(pack: FacePack, heldout: np.ndarray, n: int, image_size: int, seed: int
                    ) -> dict[str, np.ndarray]:
    """The fixed evaluation batch of the held-out records, chosen as the tf.data path's make_eval_batch chooses
    (eval_batch_indices over the first eval_pool_size(n) held-out records): the same records, decoded from the
    pack's JPEGs.

    Returns:
        {"target", "source": [n, S, S, 3] float32 RGB in [-1, 1]; "same": [n] zeros; "target_label",
        "source_label": [n] int64; "target_path", "source_path": [n] str}.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    pool = np.asarray(heldout, np.int64)[:eval_pool_size(n)]
    targets, sources = eval_batch_indices(pack.label[pool].tolist(), n, seed)
    stream = PackStream(pack, pool, 1, image_size, 0.0, jitter=False)
    return {"target": stream.decode_records(pool[targets]), "source": stream.decode_records(pool[sources]),
            "same": np.zeros(n, np.float32), "target_label": pack.label[pool[targets]].astype(np.int64),
            "source_label": pack.label[pool[sources]].astype(np.int64),
            "target_path": pack.path[pool[targets]], "source_path": pack.path[pool[sources]]}
