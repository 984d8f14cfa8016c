"""Exercises: checkers for every chapter, and the tools that make student notebooks and grade them.

Chapter notebooks are the solution version. Exercise cells are tagged ``exercise`` and hold the
solution between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's markers); the cell
after each is tagged ``check`` and calls the chapter's checker, e.g. ``check.toy_forward(toy_forward)``.

Command line (see ``python -m saelab.exercises --help``)::

    python -m saelab.exercises make-student notebooks/ -o student/
    python -m saelab.exercises grade student/01_superposition.ipynb
    python -m saelab.exercises grade SUBMISSIONS/ --csv grades.csv

Grading (``grading.py``, ``gradebook.py``) runs each submission in its own processes
(``isolation.py``) and takes the checks from the course (``course.py``), never from the submission.
"""
