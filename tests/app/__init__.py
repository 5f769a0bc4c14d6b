"""The dashboard through Streamlit's AppTest: pages, sessions, the Lab, user text."""
