"""Product understanding on top of the encoders: catalogue-tuned heads (`heads`), the words-to-pictures bridge
(`align`), similar products (`similar`) and semantic search (`search`)."""
