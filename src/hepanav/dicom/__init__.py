"""DICOM objects in and out: SEG/SR/SC export, PACS query/retrieve/store, pseudonymisation."""
