"""HepaNav as a web application (FastAPI): worklist, workflows, jobs, viewer."""
