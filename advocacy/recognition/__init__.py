"""Recognition: an employee's own figures (/me/figures), contests (/app/contests, /me/contests) and the ambassador
of the month (internal, and a public page and widget for employees who opted in). Built on the click reports
(service.clicks.reports) and the newsletter's confirmed posts; what others see is read from portal.visibility."""
