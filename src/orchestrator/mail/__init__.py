"""Email: templates, SMTP and file transports, and the record that stops a second send."""
