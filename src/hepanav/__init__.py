"""HepaNav: image-guided, margin-controlled treatment of liver metastases.

Research software. Not a medical device: no result may be used for the
diagnosis or treatment of a patient.
"""

__version__ = "0.1.0"

DISCLAIMER = (
    "HepaNav is research software and is NOT a medical device. Its results have not "
    "been cleared or approved for clinical use and must not be used for diagnosis or "
    "treatment decisions."
)

__all__ = ["DISCLAIMER", "__version__"]
