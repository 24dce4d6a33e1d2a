"""nbgrader configuration of the AlignLab course: run `nbgrader …` from this folder.

Layout (nbgrader's standard): source/<lab>/<lab>.ipynb are the instructor versions (solutions
and hidden tests); `nbgrader generate_assignment` writes release/, students hand in to
submitted/<student>/<lab>/, `nbgrader autograde` writes autograded/, `generate_feedback` writes
feedback/, and grades live in gradebook.db. See docs/instructors.md for the commands.
"""
c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "alignlab"

# A lab's slowest cell trains a model: seconds in the `ci` profile, a few minutes in `cpu`.
# The limit stays finite so a submission with an infinite loop fails that cell (and so loses its
# points) instead of hanging the grading run.
c.Execute.timeout = 600
c.Execute.interrupt_on_timeout = True

# Students' code that prints without end must not bloat the autograded notebooks.
c.LimitOutput.max_lines = 500
c.LimitOutput.max_traceback = 100
