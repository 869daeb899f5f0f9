"""Prior knowledge shared by every method: landmark schemes, label vocabularies, task relatedness."""
