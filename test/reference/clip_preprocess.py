#!/usr/bin/env python3
"""Reference CLIP image preprocessing with PIL and numpy, as Hugging Face's CLIPImageProcessor
does it, for comparing clipcrawl's preprocessing against.

    clip_preprocess.py PREPROCESSOR_CONFIG OUT_DIR IMAGE...

For each image, writes OUT_DIR/<index>.f32: the float32 tensor [3, height, width], C order,
little-endian, and prints one JSON line {"index", "shape"}. Follows transformers'
get_resize_output_image_size (long side truncated), PIL resize with the stated resample code,
center_crop (offset floor((size - crop) / 2), zero padding when smaller), rescale in float64
then float32, normalise in float32.
"""
import json
import sys

import numpy as np
from PIL import Image, ImageOps


def resized_size(height, width, size):
    if "shortest_edge" in size:
        edge = size["shortest_edge"]
        if width <= height:
            return int(edge * height / width), edge
        return edge, int(edge * width / height)
    return size["height"], size["width"]


def as_size(value, square):
    if isinstance(value, int):
        return {"height": value, "width": value} if square else {"shortest_edge": value}
    return value


def center_crop(array, crop_height, crop_width):
    height, width = array.shape[:2]
    top = (height - crop_height) // 2
    left = (width - crop_width) // 2
    out = np.zeros((crop_height, crop_width, array.shape[2]), dtype=array.dtype)
    for row in range(crop_height):
        source_row = row + top
        if source_row < 0 or source_row >= height:
            continue
        lo = max(0, -left)
        hi = min(crop_width, width - left)
        out[row, lo:hi] = array[source_row, left + lo : left + hi]
    return out


def preprocess(path, config):
    image = ImageOps.exif_transpose(Image.open(path))
    if config.get("do_convert_rgb", True):
        image = image.convert("RGB")
    if config.get("do_resize", True):
        height, width = resized_size(image.height, image.width, as_size(config["size"], False))
        image = image.resize((width, height), resample=config.get("resample", 3))
    array = np.array(image)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if config.get("do_center_crop", True):
        crop = as_size(config["crop_size"], True)
        array = center_crop(array, crop["height"], crop["width"])
    array = array.astype(np.float32)
    if config.get("do_rescale", True):
        array = (array.astype(np.float64) * config.get("rescale_factor", 1 / 255)).astype(np.float32)
    if config.get("do_normalize", True):
        mean = np.array(config["image_mean"], dtype=np.float32)
        std = np.array(config["image_std"], dtype=np.float32)
        array = (array - mean) / std
    return np.ascontiguousarray(array.transpose(2, 0, 1), dtype="<f4")


def main():
    config_path, out_dir, *images = sys.argv[1:]
    with open(config_path) as handle:
        config = json.load(handle)
    for index, path in enumerate(images):
        tensor = preprocess(path, config)
        tensor.tofile(f"{out_dir}/{index}.f32")
        print(json.dumps({"index": index, "shape": list(tensor.shape)}))


if __name__ == "__main__":
    main()
