// Placeholder translation unit for a library whose sources are all headers.
