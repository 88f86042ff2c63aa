"""The swap pipeline's media: images (clipswap.media.images), videos (clipswap.media.video), the synthetic-content
label (clipswap.media.labels) and the invisible watermark (clipswap.media.watermark); what they share (file types,
the pixel limit, MediaError) is clipswap.media.common."""
