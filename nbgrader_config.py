"""nbgrader reads this file when JupyterLab starts from the repository root (`make lab`): its
JupyterLab extensions (the assignment list and the formgrader) look for a course here.

Students need none of it. For an instructor it makes the course in labs/ the one the formgrader
shows, with that course's settings; a course copied elsewhere (docs/instructors.md) keeps its own
labs/nbgrader_config.py and does not read this file.
"""
import os

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)
load_subconfig("labs/nbgrader_config.py")  # noqa: F821 (the course's settings: id, timeouts, limits)
c.CourseDirectory.root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "labs")
