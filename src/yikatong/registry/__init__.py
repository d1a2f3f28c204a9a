"""The registry of people and cards: regions, persons, households, social security cards, proxy holders."""
