"""The training input pipeline: tf.data over `clipswap align` shards (FaceDancer's data recipe: colour jitter,
same-identity pairs).

Each step draws a target batch and a source batch from two independent streams over the same shards (own shuffle
seeds), decodes them to RGB in [-1, 1], resizes them (bilinear) when the shards hold another size, colour-jitters
each batch with one stateless draw per batch (separate seeds for target and source), and makes each sample a
same-identity pair with probability `same_identity_prob` (at least one per batch, as FaceDancer). With `mates` (what
`clipswap train` uses when some person has two faces) such a pair is two different photos of one person from a
third stream, the target and the source, so the reconstruction and perceptual terms compare the swap with a real
photo whose pose and expression differ from the source's (SimSwap's recipe); without it the source is replaced by
the target after the jitter, pixel-identical (FaceDancer's "the source is the target").

Determinism: every random choice is seeded from `seed` (numpy SeedSequence -> separate seeds for the two shuffles of
each stream, the same-pair draw and the two jitters); stateless draws are keyed by the step index, so two datasets
made with the same arguments yield identical batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import tensorflow as tf

from clipswap.facedata.shards import ShardError, count_records, iterate_records, list_shards, parse_features
from clipswap.training.sampling import (
    BRIGHTNESS_DELTA,
    CONTRAST_RANGE,
    LUMA,
    SATURATION_RANGE,
    derive_seeds,
    eval_batch_indices,
    eval_pool_size,
)

__all__ = ["count_records", "decode_image", "make_eval_batch", "make_pair_dataset", "make_train_dataset", "mate_stream",
           "people_with_several_faces"]

Shards = str | Path | Sequence[str | Path]


def decode_image(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """Encoded PNG/JPEG bytes -> [image_size, image_size, 3] float32 RGB in [-1, 1].

    Images of another size are resized (bilinear, half-pixel centres); images of the right size are not resampled,
    so their values are exactly pixel / 127.5 - 1.
    """
    pixels = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image = tf.cast(pixels, tf.float32) / 127.5 - 1.0
    shape = tf.shape(image)
    image = tf.cond(
        tf.logical_and(tf.equal(shape[0], image_size), tf.equal(shape[1], image_size)),
        lambda: image,
        lambda: tf.image.resize(image, (image_size, image_size), method="bilinear"),
    )
    return tf.ensure_shape(image, (image_size, image_size, 3))


def _shuffled_records(files: Sequence[str], file_seed: int, record_seed: int, shuffle_buffer: int,
                      repeat: bool) -> tf.data.Dataset:
    """Serialised records of all shards: file order shuffled, files interleaved, then a record shuffle buffer."""
    dataset = tf.data.Dataset.from_tensor_slices(list(files))
    dataset = dataset.shuffle(len(files), seed=file_seed, reshuffle_each_iteration=True)
    dataset = dataset.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
                                 num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.shuffle(shuffle_buffer, seed=record_seed, reshuffle_each_iteration=True)
    return dataset.repeat() if repeat else dataset


def _stream(files: list[str], image_size: int, batch_size: int, file_seed: int, record_seed: int,
            shuffle_buffer: int, repeat: bool) -> tf.data.Dataset:
    """Batches of (images [B, S, S, 3] in [-1, 1], labels [B] int64) over all shards, shuffled with its own seeds."""
    dataset = _shuffled_records(files, file_seed, record_seed, shuffle_buffer, repeat)

    def parse(serialized):
        features = parse_features(serialized)
        return decode_image(features["image"], image_size), features["label"]

    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size, drop_remainder=True)


def mate_stream(files: list[str], image_size: int, batch_size: int, file_seed: int, record_seed: int,
                shuffle_buffer: int, repeat: bool) -> tf.data.Dataset:
    """Batches of (first [B, S, S, 3], second [B, S, S, 3] in [-1, 1], labels [B] int64): two different photos of
    one person a sample, from a shuffled stream of the shards in which each person's records are paired as they
    arrive (group_by_window, windows of 2; a window whose two records are the same photo, as a repeated stream
    can give, is dropped).

    Memory: the stream holds at most one waiting record a person (a person seen once so far, or with one photo), so
    it is bounded by the number of identities, not of faces. People with one photo never complete a window: they are
    never a same-identity pair here.
    """
    dataset = _shuffled_records(files, file_seed, record_seed, shuffle_buffer, repeat)

    def parse(serialized):
        features = parse_features(serialized)
        return features["label"], features["image"]

    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.group_by_window(key_func=lambda label, image: label,
                                      reduce_func=lambda key, window: window.batch(2), window_size=2)
    # A window is a pair when it holds two records and they are two photos: over a repeated stream a person's one
    # photo (or any photo) can meet itself from the next pass.
    dataset = dataset.filter(lambda labels, images: tf.logical_and(
        tf.equal(tf.shape(labels)[0], 2), tf.not_equal(images[0], images[-1])))
    dataset = dataset.map(lambda labels, images: (decode_image(images[0], image_size),
                                                  decode_image(images[1], image_size), labels[0]),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size, drop_remainder=True)


def people_with_several_faces(shards: Shards) -> tuple[int, int]:
    """(identities with two or more faces, identities) in the shards: one pass over their labels."""
    counts: dict[int, int] = {}
    dataset = tf.data.TFRecordDataset(list_shards(shards)).map(lambda s: parse_features(s)["label"])
    for label in dataset.as_numpy_iterator():
        counts[int(label)] = counts.get(int(label), 0) + 1
    return sum(1 for n in counts.values() if n >= 2), len(counts)


def color_jitter(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """One random brightness/contrast/saturation change for the whole batch (the recipe's jitter).

    Args:
        images: [B, S, S, 3] float32 RGB in [-1, 1].
        seed: [2] int64 stateless seed.

    Returns:
        [B, S, S, 3] float32 in [-1, 1]: x + b with b ~ U(-0.3, 0.3); then per image and channel
        mean + c * (x - mean) with c ~ U(0.9, 1.1); then grey + s * (x - grey) with s ~ U(0.9, 1.1) and grey the
        BT.601 luma (a linear saturation change, valid for data in [-1, 1] unlike an HSV one); clipped to [-1, 1].
    """
    draws = tf.random.stateless_uniform([3], seed=seed, dtype=tf.float32)
    brightness = (2.0 * draws[0] - 1.0) * BRIGHTNESS_DELTA
    contrast = CONTRAST_RANGE[0] + (CONTRAST_RANGE[1] - CONTRAST_RANGE[0]) * draws[1]
    saturation = SATURATION_RANGE[0] + (SATURATION_RANGE[1] - SATURATION_RANGE[0]) * draws[2]
    images = images + brightness
    mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
    images = mean + contrast * (images - mean)
    grey = tf.reduce_sum(images * tf.constant(LUMA, tf.float32), axis=-1, keepdims=True)
    images = grey + saturation * (images - grey)
    return tf.clip_by_value(images, -1.0, 1.0)


def same_identity_mask(batch_size: int, probability: float, seed: tf.Tensor) -> tf.Tensor:
    """[B] bool: each sample True with `probability`; when none is and probability > 0, one random sample is."""
    mask = tf.random.stateless_uniform([batch_size], seed=seed) < probability
    if probability <= 0.0:
        return mask
    # The forced sample's index comes from a neighbouring key so it does not correlate with the mask draw.
    pick_seed = seed + tf.constant([1, 0], seed.dtype)
    pick = tf.random.stateless_uniform([], seed=pick_seed, minval=0, maxval=batch_size, dtype=tf.int32)
    forced = tf.logical_and(tf.equal(tf.range(batch_size), pick), tf.logical_not(tf.reduce_any(mask)))
    return tf.logical_or(mask, forced)


def make_train_dataset(
    shards: Shards,
    batch_size: int,
    image_size: int,
    same_identity_prob: float = 0.2,
    jitter: bool = True,
    seed: int = 0,
    shuffle_buffer: int = 1000,
    repeat: bool = True,
    mates: bool = False,
) -> tf.data.Dataset:
    """The training dataset.

    Args:
        shards: shard files, their folder, the `clipswap align` output folder, a glob, or a list of these.
        batch_size: samples per batch (static: the last incomplete batch is dropped).
        image_size: side S the images are resized to (bilinear) when the shards hold another size.
        same_identity_prob: probability in [0, 1] that a sample's source is replaced by its target.
        jitter: apply the recipe's colour jitter.
        seed: seeds every shuffle and random draw.
        shuffle_buffer: records in each stream's shuffle buffer.
        repeat: loop over the data forever (reshuffled each pass); False gives one pass per stream.
        mates: a same-identity sample is two different photos of one person (a third stream, mate_stream: the
            target and, as the source, the other photo) instead of its target twice. The shards must hold a person
            with two or more faces (people_with_several_faces), else that stream never yields.

    Returns:
        A dataset of dicts, prefetched:
            "target": [B, S, S, 3] float32 RGB in [-1, 1]
            "source": [B, S, S, 3] float32 RGB in [-1, 1] (equal to "target" where "same" is 1, without `mates`)
            "same": [B] float32, 1.0 where the sample is a same-identity pair
            "target_label", "source_label": [B] int64 identity indices (identities.json)
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if image_size < 1:
        raise ValueError(f"image_size must be at least 1, got {image_size}")
    if not 0.0 <= same_identity_prob <= 1.0:
        raise ValueError(f"same_identity_prob must be in [0, 1], got {same_identity_prob}")
    if shuffle_buffer < 1:
        raise ValueError(f"shuffle_buffer must be at least 1, got {shuffle_buffer}")
    files = list_shards(shards)
    (target_files, target_records, source_files, source_records,
     same_seed, target_jitter, source_jitter) = derive_seeds(seed, 7)
    targets = _stream(files, image_size, batch_size, target_files, target_records, shuffle_buffer, repeat)
    sources = _stream(files, image_size, batch_size, source_files, source_records, shuffle_buffer, repeat)
    probability = float(same_identity_prob)

    def combine(step, target, source, mate=None):
        (target_images, target_labels), (source_images, source_labels) = target, source
        step = tf.cast(step, tf.int64)
        where = None
        if mate is not None:
            # Same-identity samples: the mate stream's two photos replace target and source before the jitter.
            same = same_identity_mask(batch_size, probability, tf.stack([tf.constant(same_seed, tf.int64), step]))
            where = same[:, None, None, None]
            (first, second, mate_labels) = mate
            target_images = tf.where(where, first, target_images)
            source_images = tf.where(where, second, source_images)
            target_labels = tf.where(same, mate_labels, target_labels)
            source_labels = tf.where(same, mate_labels, source_labels)
        if jitter:
            target_images = color_jitter(target_images, tf.stack([tf.constant(target_jitter, tf.int64), step]))
            source_images = color_jitter(source_images, tf.stack([tf.constant(source_jitter, tf.int64), step]))
        if mate is None:
            same = same_identity_mask(batch_size, probability, tf.stack([tf.constant(same_seed, tf.int64), step]))
            source_images = tf.where(same[:, None, None, None], target_images, source_images)
            source_labels = tf.where(same, target_labels, source_labels)
        return {
            "target": target_images,
            "source": source_images,
            "same": tf.cast(same, tf.float32),
            "target_label": target_labels,
            "source_label": source_labels,
        }

    streams = [targets, sources]
    if mates:
        mate_files, mate_records = derive_seeds(seed, 9)[7:]
        streams.append(mate_stream(files, image_size, batch_size, mate_files, mate_records, shuffle_buffer, repeat))
    dataset = tf.data.Dataset.zip(*streams).enumerate()
    dataset = dataset.map(lambda step, parts: combine(step, *parts), num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def make_pair_dataset(
    files: Sequence[str],
    batch_size: int,
    image_size: int,
    same_identity_prob: float = 0.2,
    jitter: bool = True,
    seed: int = 0,
    shuffle_buffer: int = 1000,
    repeat: bool = True,
    warped: bool = False,
    mates: bool = False,
    landmarks: bool = False,
    source_glasses: float = 0.0,
) -> tf.data.Dataset:
    """The training dataset over `clipswap pairs` shards (target, source, teacher of two different people).

    One stream of pair records, shuffled (file order, then a `shuffle_buffer` of records), decoded to [-1, 1] and
    batched. The target and its teacher get the same colour jitter (the teacher is the target with a new face, so
    they must stay alike outside it); the source its own. Then, as in make_train_dataset, each sample becomes a
    same-identity pair with probability `same_identity_prob`: its teacher is replaced by its target (the ground
    truth) and its source by another photo of the target's person (the record's "mate", with `mates`: pairs made
    since the field existed), or by the target itself when the person has one photo or without `mates`. A mate
    gets the source's colour jitter, as the source it stands for.

    With `warped` each batch also holds "warped" (the source face warped onto the target and pasted into it, the
    input of a source_warp generator): it gets the target's colour jitter (it is the target with a new face,
    colour-matched to it), and on same-identity pairs it is the target.

    Returns:
        A dataset of dicts like make_train_dataset's, plus "teacher": [B, S, S, 3] float32 RGB in [-1, 1] (and
        "warped", the same, with `warped`: on a same-identity pair the mate warped onto the target), and
        "same_photo": [B] float32, 1.0 where a same-identity pair reuses the target's own photo as its source;
        with `mates` also "mate" (the other photo of the target's person, with the source's jitter; the target
        where there is none) and "has_mate" ([B] float32, 1.0 where there is one); with `landmarks` (pairs whose
        records hold them) "target_68" and "source_68", [B, 68, 2] float32 fractions of the crop side, the source's
        being those of whatever the sample's source became (the mate's, or the target's own on a same-photo pair).

    `source_glasses` (needs `landmarks`): each batch also holds "drawn_source", the source (whatever it became)
    with clear glasses drawn on its landmarks with that probability (clipswap.training.occluder.glasses_on_faces),
    after the jitter: what G reads as its source crop (SwapLoss.read_batch). "source" itself, which the identity
    terms read, the target, the teacher and the warp keep none, so the losses that compare the swap with them teach
    G not to carry a source's glasses onto a target without them.
    """
    if batch_size < 1 or image_size < 1 or shuffle_buffer < 1:
        raise ValueError("batch_size, image_size and shuffle_buffer must be at least 1")
    if not 0.0 <= same_identity_prob <= 1.0:
        raise ValueError(f"same_identity_prob must be in [0, 1], got {same_identity_prob}")
    if not 0.0 <= source_glasses <= 1.0 or (source_glasses and not landmarks):
        raise ValueError(f"source_glasses must be in [0, 1] and needs landmarks, got {source_glasses} "
                         f"(landmarks={landmarks})")
    from clipswap.facedata.pairs import parse_pair

    # Six seeds: SeedSequence's words are a prefix of a longer draw, so the first five are what they were before the
    # glasses' seed was added.
    file_seed, record_seed, same_seed, target_jitter, source_jitter, glasses_seed = derive_seeds(seed, 6)
    dataset = _shuffled_records(files, file_seed, record_seed, shuffle_buffer, repeat)

    def parse(serialized):
        pair = parse_pair(serialized)
        parsed = {
            "target": decode_image(pair["target"], image_size),
            "source": decode_image(pair["source"], image_size),
            "teacher": decode_image(pair["teacher"], image_size),
            "target_label": pair["target_label"],
            "source_label": pair["source_label"],
        }
        if warped:
            parsed["warped"] = decode_image(pair["warped"], image_size)
        if landmarks:
            for key in ("target_68", "source_68", "mate_68"):
                parsed[key] = tf.reshape(pair[key], [68, 2])
        if mates:
            has_mate = tf.strings.length(pair["mate"]) > 0
            parsed["has_mate"] = has_mate
            parsed["mate"] = tf.cond(has_mate, lambda: decode_image(pair["mate"], image_size),
                                     lambda: parsed["target"])
            if warped:
                parsed["mate_warped"] = tf.cond(has_mate, lambda: decode_image(pair["mate_warped"], image_size),
                                                lambda: parsed["target"])
        return parsed

    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    probability = float(same_identity_prob)

    def combine(step, batch):
        step = tf.cast(step, tf.int64)
        target, source = batch["target"], batch["source"]
        alike = [batch["teacher"]] + ([batch["warped"]] if warped else [])
        if mates and warped:
            alike.append(batch["mate_warped"])
        sources = [source] + ([batch["mate"]] if mates else [])
        if jitter:
            key = tf.stack([tf.constant(target_jitter, tf.int64), step])
            # One batch draw for all: concatenating keeps the per-image contrast statistics of each image.
            jittered = tf.split(color_jitter(tf.concat([target, *alike], axis=0), key), 1 + len(alike), axis=0)
            target, alike = jittered[0], jittered[1:]
            key = tf.stack([tf.constant(source_jitter, tf.int64), step])
            sources = tf.split(color_jitter(tf.concat(sources, axis=0), key), len(sources), axis=0)
        same = same_identity_mask(batch_size, probability, tf.stack([tf.constant(same_seed, tf.int64), step]))
        where = same[:, None, None, None]
        if mates:
            # Another photo where the person has one; the target itself (target jitter) where it has not.
            has_mate = batch["has_mate"][:, None, None, None]
            same_source = tf.where(has_mate, sources[1], target)
            same_photo = tf.logical_and(same, tf.logical_not(batch["has_mate"]))
        else:
            same_source, same_photo = target, same
        combined = {
            "target": target,
            "source": tf.where(where, same_source, sources[0]),
            "teacher": tf.where(where, target, alike[0]),
            "same": tf.cast(same, tf.float32),
            "same_photo": tf.cast(same_photo, tf.float32),
            "target_label": batch["target_label"],
            "source_label": tf.where(same, batch["target_label"], batch["source_label"]),
        }
        if warped:
            same_warped = tf.where(has_mate, alike[2], target) if mates else target
            combined["warped"] = tf.where(where, same_warped, alike[1])
        if landmarks:
            same_points = (tf.where(batch["has_mate"][:, None, None], batch["mate_68"], batch["target_68"]) if mates
                           else batch["target_68"])
            combined["target_68"] = batch["target_68"]
            combined["source_68"] = tf.where(same[:, None, None], same_points, batch["source_68"])
        if source_glasses:
            from clipswap.training.occluder import glasses_on_faces

            key = tf.stack([tf.constant(glasses_seed, tf.int64), step])
            drawn = tf.numpy_function(lambda images, points, seed: glasses_on_faces(images, points, source_glasses,
                                                                                    seed),
                                      [combined["source"], combined["source_68"], key], tf.float32, stateful=False)
            combined["drawn_source"] = tf.ensure_shape(drawn, combined["source"].shape)
        if mates:
            # A paired discriminator's real pair: the target beside another photo of its person, where there is one.
            combined["mate"] = same_source
            combined["has_mate"] = tf.cast(batch["has_mate"], tf.float32)
        return combined

    dataset = dataset.enumerate().map(combine, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def make_eval_batch(shards: Shards, n: int, image_size: int, seed: int = 0) -> dict[str, tf.Tensor]:
    """A fixed batch for image grids and the held-out identity loss: no jitter, no same pairs, deterministic.

    Targets are `n` records drawn (numpy default_rng(seed)) from the first max(16 n, 512) records of the shards in
    file order (the align job writes them shuffled, so that is a random sample); each source is another record of a
    different identity where the pool has one.

    Returns:
        {"target", "source": [n, S, S, 3] float32 RGB in [-1, 1]; "same": [n] zeros float32;
        "target_label", "source_label": [n] int64; "target_path", "source_path": [n] string, the records' photo
        paths}.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    limit = eval_pool_size(n)
    pool = []
    for record in iterate_records(shards):
        pool.append((record.image, record.label, record.path))
        if len(pool) >= limit:
            break
    if not pool:
        raise ShardError(f"the shards {shards} hold no records: the evaluation batch needs at least one face")
    target_index, source_index = eval_batch_indices([label for _, label, _ in pool], n, seed)

    def stack(indices):
        images = tf.stack([decode_image(tf.constant(pool[i][0]), image_size) for i in indices])
        labels = tf.constant([pool[i][1] for i in indices], tf.int64)
        return images, labels

    targets, target_labels = stack(target_index)
    sources, source_labels = stack(source_index)
    return {"target": targets, "source": sources, "same": tf.zeros([n], tf.float32),
            "target_label": target_labels, "source_label": source_labels,
            "target_path": tf.constant([pool[i][2] for i in target_index]),
            "source_path": tf.constant([pool[i][2] for i in source_index])}
