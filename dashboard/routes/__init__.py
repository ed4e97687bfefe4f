"""Page scripts for ``st.navigation`` (two lines each: render a :mod:`dashboard.views` page).

Not named ``pages/``: Streamlit would also treat such a directory as a legacy multipage app
and could run a page without the sign-in gate in ``app.py``.
"""
