"""The employee portal (/me): an employee's own space — their signature, what they share, their figures, their
data and choices. Signed-in through service.accounts (User.employee_id links a person to their directory row);
pages declare `user: PageUser = Depends(employee_guard)`."""
