"""Devices that run beside the portal: the virtual gateway."""
