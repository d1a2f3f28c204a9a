"""Yikatong (一卡通): pay and supervise government subsidies through the social security card."""

__version__ = "0.1.0"
