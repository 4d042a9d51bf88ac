"""The image types picforge accepts, shared by the API (what may be declared) and the worker
(what the bytes must turn out to be)."""

# Declared Content-Type -> the format Pillow must sniff from the bytes.
ACCEPTED_CONTENT_TYPES: dict[str, str] = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
    "image/avif": "AVIF",
    "image/heic": "HEIF",
    "image/heif": "HEIF",
}
