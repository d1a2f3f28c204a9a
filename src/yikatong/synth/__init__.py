"""The synthetic city: a Neijiang-like city with people, cards, catalogue and demo users."""
