"""ClipClient's HTTP protocol with nothing but `requests`, as clip-retrieval's Python client speaks
it: one POST of a JSON string (no Content-Type header) holding every field, absent queries as
null, an `image` that starts with "http" sent as `image_url`, any other read from its file and
sent as base64; the answer is `response.json()`.

    python3 clip_client_requests.py URL INDICE_NAME QUERIES_JSON

QUERIES_JSON is a list of {"text"|"image"|"embedding_input": ..., plus any of the client's
options}; the script prints one JSON list: the answer to each query, in order.
"""

import base64
import json
import sys

import requests


def knn_request(url, indice_name, text=None, image=None, embedding_input=None, **options):
    image_url = None
    if image is not None and image.startswith("http"):
        image_url, image = image, None
    elif image is not None:
        with open(image, "rb") as image_file:
            image = str(base64.b64encode(image_file.read()).decode("utf-8"))
    num_images = options.get("num_images", 40)
    payload = {
        "text": text,
        "image": image,
        "image_url": image_url,
        "embedding_input": embedding_input,
        "deduplicate": options.get("deduplicate", True),
        "use_safety_model": options.get("use_safety_model", True),
        "use_violence_detector": options.get("use_violence_detector", True),
        "indice_name": indice_name,
        "use_mclip": options.get("use_mclip", False),
        "aesthetic_score": options.get("aesthetic_score", 9),
        "aesthetic_weight": options.get("aesthetic_weight", 0.5),
        "modality": options.get("modality", "image"),
        "num_images": num_images,
        "num_result_ids": num_images,
    }
    return requests.post(url, data=json.dumps(payload), timeout=3600).json()


def main():
    url, indice_name, queries = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    answers = [knn_request(url, indice_name, **query) for query in queries]
    print(json.dumps(answers))


if __name__ == "__main__":
    main()
