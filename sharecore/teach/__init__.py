"""Teaching: guided exercises whose claims are tested, and the pitfalls of sharing weights in Keras."""
