"""Messages picforge sends to the worker's queue itself, beside S3's own notifications.

A reprocess request asks the worker to render an image's original again (after presets
changed, say). A `ready` image stays `ready` while its renditions are replaced.
"""

from __future__ import annotations

import json
import uuid

REPROCESS = "picforge.reprocess"


def reprocess_message(image_id: uuid.UUID) -> str:
    return json.dumps({"type": REPROCESS, "image_id": str(image_id)})
