-- Notes posted in rooms; one Durable Object per room writes them.
CREATE TABLE notes (
  id INTEGER PRIMARY KEY,
  room TEXT NOT NULL,
  author TEXT NOT NULL,
  text TEXT NOT NULL CHECK (length(text) BETWEEN 1 AND 500)
);
CREATE INDEX notes_room ON notes (room, id);
