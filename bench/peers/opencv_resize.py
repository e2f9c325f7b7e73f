"""The peer of clipcrawl's resizer: what img2dataset's resizer does for the default border mode,
with OpenCV on one thread: imdecode (IMREAD_UNCHANGED), alpha matted onto white, resize the
longest side to SIZE keeping the ratio (INTER_AREA down, INTER_LANCZOS4 up), pad with white to
SIZE x SIZE, imencode JPEG at quality 95.

usage: opencv_resize.py SIZE PASSES WARM_UP FILE...
prints {"images": n, "seconds": s} as JSON
(the first WARM_UP images are resized once before the clock starts, as clipcrawl's side does)
"""
import json
import sys
import time

import cv2
import numpy as np

cv2.setNumThreads(1)


def resize_border(encoded: bytes, size: int) -> bytes:
    image = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_UNCHANGED)
    if len(image.shape) == 3 and image.shape[-1] == 4:
        # img2dataset's alpha matting with a white background
        alpha = image[:, :, 3, np.newaxis]
        image = alpha / 255 * image[..., :3] + 255 - alpha
        image = np.rint(image.clip(min=0, max=255)).astype(np.uint8)
    height, width = image.shape[:2]
    scale = size / max(height, width)
    new_width, new_height = round(width * scale), round(height * scale)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LANCZOS4
    image = cv2.resize(image, (new_width, new_height), interpolation=interpolation)
    top = (size - new_height) // 2
    left = (size - new_width) // 2
    image = cv2.copyMakeBorder(
        image, top, size - new_height - top, left, size - new_width - left,
        cv2.BORDER_CONSTANT, value=[255, 255, 255],
    )
    ok, output = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return output.tobytes()


def main() -> None:
    size, passes, warm_up = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    images = [open(path, "rb").read() for path in sys.argv[4:]]
    for encoded in images[:warm_up]:
        resize_border(encoded, size)
    started = time.perf_counter()
    count = 0
    for _ in range(passes):
        for encoded in images:
            resize_border(encoded, size)
            count += 1
    print(json.dumps({"images": count, "seconds": time.perf_counter() - started}))


main()
