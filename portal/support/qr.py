"""QR codes as inline SVG markup (no script, no style attribute: fine under the CSP)."""
import re

import qrcode
import qrcode.image.svg
from markupsafe import Markup, escape


def svg(text: str, title: str) -> Markup:
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, border=4)
    markup = str(image.to_string(encoding="unicode"))
    # The stylesheet sizes it (.qr svg); the fixed millimetre size would not scale.
    markup = re.sub(r'^<svg width="[^"]*" height="[^"]*"', "<svg", markup, count=1)
    markup = markup.replace("<svg ", f'<svg role="img" aria-label="{escape(title)}" ', 1)
    return Markup(markup)
