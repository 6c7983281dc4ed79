"""What every translated image says about itself: made by a model, and in sRGB.

Each answer carries an XMP packet in its format's standard place (PNG iTXt
`XML:com.adobe.xmp`, JPEG APP1, WebP XMP chunk) with the IPTC digital source type
"trainedAlgorithmicMedia", the software, the direction and the model's name and version, so
tools and platforms that read provenance can tell the picture was made by a model. And each
carries an sRGB ICC profile: inputs are converted to sRGB before translation
(serving/image_io.py), so the colours mean the same on every screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from xml.sax.saxutils import escape, quoteattr

from PIL import ImageCms

SOFTWARE = "cyclegan-service"
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
XMP_KEY = "XML:com.adobe.xmp"  # the PNG iTXt keyword XMP readers look for


@dataclass(frozen=True)
class Provenance:
    direction: str
    model: str
    version: str

    def xmp(self) -> bytes:
        description = (
            f"Made by a machine-learning model: {self.direction} translation by "
            f"{self.model} {self.version} ({SOFTWARE})"
        )
        return f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:cyclegan="https://github.com/cyclegan-service/ns/1.0/"
    Iptc4xmpExt:DigitalSourceType={quoteattr(DIGITAL_SOURCE_TYPE)}
    xmp:CreatorTool={quoteattr(SOFTWARE)}
    cyclegan:Direction={quoteattr(self.direction)}
    cyclegan:Model={quoteattr(self.model)}
    cyclegan:ModelVersion={quoteattr(self.version)}>
   <dc:description>
    <rdf:Alt><rdf:li xml:lang="x-default">{escape(description)}</rdf:li></rdf:Alt>
   </dc:description>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="r"?>""".encode()


@lru_cache(maxsize=1)
def srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@lru_cache(maxsize=1)
def srgb_icc() -> bytes:
    """LittleCMS's sRGB profile (588 bytes), embedded in every answer."""
    return srgb_profile().tobytes()
